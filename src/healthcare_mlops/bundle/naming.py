"""How the Databricks CLI names things at deploy time, for everyone who must name them the same way.

Development mode (``mode: development``) renames resources: jobs (and clusters, alerts,
experiments' base names) get the prefix ``[dev <short name>] ``, registered models (and
schemas, serving endpoints) get ``dev_<short name>_``; apps and volumes get no prefix. The
short name is the local part of the deploying user's e-mail, lower case, every character
that is not a letter or digit replaced by ``_`` (runs squeezed, ends trimmed); the
"domain friendly" name used where dashes are required (app names) has ``-`` instead.
These are the CLI's rules (its ``apply_presets`` and ``iamutil`` code), written once here.
"""

from __future__ import annotations

import re
import unicodedata

DEVELOPMENT = "development"

# resource type -> (name field, how development mode prefixes it)
PREFIXED_NAMES = {
    "jobs": ("name", "display"),
    "clusters": ("cluster_name", "display"),
    "alerts": ("display_name", "display"),
    "pipelines": ("name", "display"),
    "experiments": ("name", "basename"),
    "registered_models": ("name", "normalized"),
    "model_serving_endpoints": ("name", "normalized"),
    "schemas": ("name", "normalized"),
}


def normalize(text: str) -> str:
    """Lower case; every run of characters that are not letters or digits becomes one ``_``; ends trimmed."""
    text = "".join(ch if ch.isalnum() else "_" for ch in text.lower())
    return re.sub(r"_+", "_", text).strip("_")


def short_name(user_name: str) -> str:
    """``Jane.Doe@example.com`` -> ``jane_doe`` (``${workspace.current_user.short_name}``)."""
    return normalize(user_name.partition("@")[0])


def domain_friendly_name(user_name: str) -> str:
    """``Jane.Doe@example.com`` -> ``jane-doe`` (``${workspace.current_user.domain_friendly_name}``)."""
    plain = unicodedata.normalize("NFKD", short_name(user_name))
    plain = "".join(ch for ch in plain if not unicodedata.combining(ch))
    return "".join(ch if ch.isascii() and ch.isalnum() else "-" for ch in plain).lower()


def resolve_current_user(text: str, user_name: str) -> str:
    """``text`` with ``${workspace.current_user.short_name|domain_friendly_name|userName}`` of ``user_name``."""
    values = {"short_name": short_name(user_name), "domain_friendly_name": domain_friendly_name(user_name),
              "userName": user_name}
    return re.sub(r"\$\{workspace\.current_user\.(short_name|domain_friendly_name|userName)\}",
                  lambda match: values[match.group(1)], text)


def display_prefix(user_name: str) -> str:
    """The development-mode prefix of display names: ``[dev jane_doe] ``."""
    return f"[dev {short_name(user_name)}] "


def normalized_prefix(user_name: str, prefix: str | None = None) -> str:
    """A display prefix as Unity Catalog and endpoint names take it: ``[dev jane_doe] `` -> ``dev_jane_doe_``."""
    prefix = display_prefix(user_name) if prefix is None else prefix
    text = prefix.replace("[", "").strip(" ")
    return normalize(text) + ("_" if text.endswith("]") else "")


def deployed_name(rtype: str, name: str, mode: str | None, user_name: str, name_prefix: str | None = None) -> str:
    """The name a resource of ``rtype`` called ``name`` gets when ``user_name`` deploys it in ``mode``.

    ``name_prefix`` is the bundle's ``presets.name_prefix`` when it sets one (in any mode);
    development mode's default is ``[dev <short name>] ``.
    """
    prefix = name_prefix if name_prefix is not None else (display_prefix(user_name) if mode == DEVELOPMENT else "")
    if not prefix or rtype not in PREFIXED_NAMES:
        return name
    kind = PREFIXED_NAMES[rtype][1]
    if kind == "normalized":
        return normalized_prefix(user_name, prefix) + name
    if kind == "basename":
        folder, slash, base = name.rpartition("/")
        return f"{folder}{slash}{prefix}{base}"
    return prefix + name


def deployed_model_name(model_name: str, mode: str | None, user_name: str | None) -> str:
    """The registered model's name (without catalog and schema) as deployed; development needs the user."""
    if mode != DEVELOPMENT:
        return model_name
    if not user_name:
        raise ValueError("a development deployment's model name needs the deploying user")
    return deployed_name("registered_models", model_name, mode, user_name)
