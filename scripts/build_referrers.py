#!/usr/bin/env python3
"""Build ``attribution/data/referrers.json`` from Matomo's referrer lists.

Development tool only: it needs PyYAML, the package itself reads the JSON it writes.
Run it again when the upstream lists are updated::

    python scripts/build_referrers.py path/to/searchengine-and-social-list \
        [--revision "matomo-org/searchengine-and-social-list @ <commit>"]

Input: ``SearchEngines.yml``, ``Socials.yml`` and ``AIAssistants.yml`` from
https://github.com/matomo-org/searchengine-and-social-list (CC0-1.0).

What the conversion decides (the runtime in ``attribution/sources.py`` relies on it):

* Every list entry becomes one rule ``{name, source, hosts, ...}``. ``source`` is the
  lowercase name the product reports: the list's name slugged (``Yahoo!`` -> ``yahoo``,
  ``Hacker News`` -> ``hacker-news``), a product of an engine folded into the engine
  (``Google Images`` -> ``google``, ``Yahoo! Japan`` -> ``yahoo``), and the few names in
  ``RENAME`` spelt the way site owners know them (``Vkontakte`` -> ``vk``).
* A host may carry a path (``x.com/i/grok``) and ``{}`` wildcards: ``google.{}`` is any
  country domain (``google.de``, ``google.co.uk``, ``google.com.ua``), ``{}.bing.com`` any
  two-letter country label.
* Search-engine keyword parameters are split into names (``q``) and regular expressions
  over the whole referrer (Matomo writes them ``/.../``); ``hiddenkeyword`` likewise into
  exact paths and expressions. A search engine's first definition is marked ``primary``:
  an origin-only referrer (``https://search.naver.com/``, what browsers send by default)
  from one of its hosts is organic search even with no keyword. Later definitions are
  other sites that happen to offer the engine's results (``www.cnn.com`` for Google) and
  count only when the referrer shows a search.
* A search-engine host that is also a social network (``www.facebook.com``) counts as
  search only when the referrer shows a search; otherwise it is the network.
* ``EXTRA_SOCIAL_HOSTS`` adds the current domains of a few networks the upstream list
  still knows by an older one (``ok.ru``, ``vk.ru``, ``t.me``), ``EXTRA_SEARCH_HOSTS``
  the no-JavaScript front ends of DuckDuckGo.
* Hosts the AI-assistant list claims (``chatgpt.com``, ``perplexity.ai``, ``you.com``)
  are removed from the search-engine list: a link in an assistant's answer is a
  referral from that assistant.
* Android app referrers (``android-app://com.google.android.gm/``) are matched by the
  package name, which is how they are written in the lists.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "attribution" / "data" / "referrers.json"

# Names whose slug would not be what a site owner types into pools.toml.
RENAME = {
    "Mailru": "mail.ru",
    "Vkontakte": "vk",
    "Google%2B": "google-plus",
    "Odnoklassniki": "ok.ru",
    "You": "you.com",
    "Chat+": "chat-plus",
}

# Hosts the upstream lists miss: DuckDuckGo's no-JavaScript front ends.
EXTRA_SEARCH_HOSTS = {
    "DuckDuckGo": ["html.duckduckgo.com", "lite.duckduckgo.com"],
}

# Current domains of networks the upstream list still knows by an older one.
EXTRA_SOCIAL_HOSTS = {
    "Odnoklassniki": ["ok.ru"],
    "Vkontakte": ["vk.ru"],
    "Telegram": ["t.me"],
}


def slug(name: str) -> str:
    if name in RENAME:
        return RENAME[name]
    text = unicodedata.normalize("NFC", unquote(name)).lower().replace("!", "")
    text = "".join(c if c.isalnum() or c in ".+" else "-" for c in text)
    return re.sub(r"-{2,}", "-", text).strip("-.")


def php_regex(text: str) -> str | None:
    """``/pattern/flags`` as a Python pattern (flags folded in), or None if it is not one."""
    m = re.fullmatch(r"/(.*)/([a-z]*)", text, re.S)
    if not m or len(text) < 2:
        return None
    body, flags = m.group(1), m.group(2)
    inline = "".join(f for f in flags if f in "imsx")
    pattern = f"(?{inline}){body}" if inline else body
    re.compile(pattern)  # a pattern Python cannot read fails the build, not the server
    return pattern


def host_entry(url: str) -> str:
    url = url.strip().lower()
    if url.startswith("android-app//"):
        url = url[len("android-app//") :]
    return url.rstrip("/") or url


def fold_names(names: list[str]) -> dict[str, str]:
    """Map each engine name to its reported source, products folded into the engine."""
    out: dict[str, str] = {}
    by_len = sorted(names, key=len)
    for name in names:
        parent = name
        for other in by_len:
            if other != name and name.startswith(other + " ") and len(other) >= 3:
                parent = other
                break
        out[name] = slug(parent)
    return out


def build(src: Path, revision: str) -> dict[str, Any]:
    engines_raw = yaml.safe_load((src / "SearchEngines.yml").read_text(encoding="utf-8"))
    socials_raw = yaml.safe_load((src / "Socials.yml").read_text(encoding="utf-8"))
    ai_raw = yaml.safe_load((src / "AIAssistants.yml").read_text(encoding="utf-8"))

    assistants = []
    ai_hosts: set[str] = set()
    for name, urls in ai_raw.items():
        hosts = sorted({host_entry(u) for u in urls if u})
        ai_hosts.update(h.split("/", 1)[0] for h in hosts)
        assistants.append({"name": str(name), "source": slug(str(name)), "hosts": hosts})

    def claimed_by_ai(host: str) -> bool:
        bare = host.split("/", 1)[0]
        return any(bare == h or bare.endswith("." + h) for h in ai_hosts)

    socials = [
        {
            "name": str(n),
            "source": slug(str(n)),
            "hosts": sorted(
                {host_entry(str(u)) for u in urls if u} | set(EXTRA_SOCIAL_HOSTS.get(str(n), ()))
            ),
        }
        for n, urls in socials_raw.items()
    ]
    social_hosts = {h.split("/", 1)[0] for r in socials for h in r["hosts"]}

    def claimed_by_social(host: str) -> bool:
        bare = host.split("/", 1)[0]
        return any(bare == h or bare.endswith("." + h) for h in social_hosts)

    names = [str(n) for n in engines_raw]
    sources = fold_names(names)
    engines = []
    dropped: list[str] = []
    for name, defs in engines_raw.items():
        for i, d in enumerate(defs):
            hosts = []
            extra = EXTRA_SEARCH_HOSTS.get(str(name), []) if i == 0 else []
            for u in list(d.get("urls") or []) + extra:
                h = host_entry(str(u))
                if claimed_by_ai(h):
                    dropped.append(f"{name}: {h}")
                    continue
                hosts.append(h)
            if not hosts:
                continue
            params, patterns = [], []
            for p in d.get("params") or []:
                p = str(p)
                rx = php_regex(p) if p.startswith("/") and len(p) > 1 else None
                if rx is not None:
                    patterns.append(rx)
                else:
                    params.append(p)
            hidden_exact, hidden_re = [], []
            for h in d.get("hiddenkeyword") or []:
                h = str(h)
                rx = php_regex(h) if len(h) > 1 and h.startswith("/") and h.endswith("/") else None
                if rx is not None:
                    hidden_re.append(rx)
                else:
                    hidden_exact.append(h)
            rule: dict[str, Any] = {
                "name": str(name),
                "source": sources[str(name)],
                "hosts": sorted(set(hosts)),
                "params": params,
            }
            if patterns:
                rule["param_patterns"] = patterns
            if hidden_exact:
                rule["hidden_paths"] = hidden_exact
            if hidden_re:
                rule["hidden_patterns"] = hidden_re
            charsets = [
                str(c).lower()
                for c in d.get("charsets") or []
                if str(c).lower() not in ("utf-8", "utf8")
            ]
            if charsets:
                rule["charsets"] = charsets
            if i == 0:
                shared = sorted(h for h in rule["hosts"] if claimed_by_social(h))
                own = sorted(h for h in rule["hosts"] if not claimed_by_social(h))
                if own:
                    engines.append({**rule, "hosts": own, "primary": True})
                if shared:
                    engines.append({**rule, "hosts": shared})
            else:
                engines.append(rule)

    for label, rules in (("search", engines), ("social", socials), ("ai", assistants)):
        for r in rules:
            if not r["source"]:
                raise SystemExit(f"{label} {r['name']!r}: empty source name")
    if dropped:
        print("search hosts left to the AI-assistant list:", ", ".join(dropped), file=sys.stderr)
    return {
        "about": "Search engines, social networks and AI assistants, converted by "
        "scripts/build_referrers.py; see LICENSE-referrers (CC0-1.0).",
        "upstream": revision,
        "search": engines,
        "social": socials,
        "ai": assistants,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "src", type=Path, help="folder holding SearchEngines.yml, Socials.yml, AIAssistants.yml"
    )
    ap.add_argument("--revision", default="matomo-org/searchengine-and-social-list @ 3b3a82dc")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    data = build(args.src, args.revision)
    text = json.dumps(data, ensure_ascii=False, indent=1, sort_keys=False) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(
        f"{args.out}: {len(data['search'])} search rules, {len(data['social'])} social "
        f"networks, {len(data['ai'])} AI assistants",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
