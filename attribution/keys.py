"""Every Redis key name callpath uses, in one place.

Each Lua script receives one *prefix* as ``KEYS[1]``; the prefix carries a hash tag
(``{…}``), so every key the script derives from it lives in one Cluster slot:

- pool scripts (allocate, match, sync) use ``pool(site, pool)``  → ``cp:{site/pool}``
- call scripts (store, conversion) use ``site(site)``              → ``cp:{site}``
- sessions live under their own tag                                → ``cp:{s:<sid>}``

Keys under a pool prefix (``P``):
  ``P:numbers``     SET  configured numbers
  ``P:leases``      ZSET number → its last holder's expiry ms: held while in the future,
                    else free since then (0: never held); lowest = rested longest
  ``P:sess``        HASH sid → "number|from_ms" (the session's lease in this pool)
  ``P:h:<number>``  ZSET sid → this holder's expiry ms (several when shared)
  ``P:hist:<n>``    ZSET "from_ms:sid" → from_ms   (lease history, for matching)
  ``P:hu:<n>``      HASH "from_ms:sid" → until_ms  (end of each finished lease)
  ``P:stats:<day>`` HASH new / held / shared / fallback / peak for that UTC day

Keys under a site prefix (``S``):
  ``S:call:<id>``   STRING the call record (JSON)
  ``S:calls``       ZSET call id → started ms (the log, newest last)
  ``S:contact``     HASH caller → ms of the latest answered or returned call (a callback)
  ``S:revenue``     HASH call id → money a CRM reported for it (conversions)
  ``S:lastsid``     HASH caller → sid of their latest attributed call ("" before one);
                    every caller who ever called in is here (first-time caller)
  ``S:unanswered``  ZSET caller → missed call ms (nobody called back yet)
  ``S:outbox``      STREAM events owed to GA4 (consumer group ``ga4``)
  ``S:sent``        HASH event id → delivered ms (the delivery ledger)
  ``S:dead``        HASH event id → JSON reason (dead letters)
  ``S:retry``       ZSET outbox entry fields (JSON) → due ms (GA4 retries waiting out their backoff)
  ``S:tx``          HASH transaction id → call id (conversions, once each)
  ``S:day:<date>``  HASH delivery counters per site-local day
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    """Key names under one namespace (tests give each test its own)."""

    ns: str = "cp"

    def pool(self, site: str, pool: str) -> str:
        return f"{self.ns}:{{{site}/{pool}}}"

    def site(self, site: str) -> str:
        return f"{self.ns}:{{{site}}}"

    def session(self, sid: str) -> str:
        return f"{self.ns}:{{s:{sid}}}"

    def ratelimit(self, ip: str, window: int) -> str:
        return f"{self.ns}:{{rl:{ip}}}:{window}"

    # keys under a site prefix, for Python-side reads
    def call(self, site: str, call_id: str) -> str:
        return f"{self.site(site)}:call:{call_id}"

    def calls(self, site: str) -> str:
        return f"{self.site(site)}:calls"

    def outbox(self, site: str) -> str:
        return f"{self.site(site)}:outbox"

    def sent(self, site: str) -> str:
        return f"{self.site(site)}:sent"

    def dead(self, site: str) -> str:
        return f"{self.site(site)}:dead"

    def retry(self, site: str) -> str:
        return f"{self.site(site)}:retry"

    def tx(self, site: str) -> str:
        return f"{self.site(site)}:tx"

    def day(self, site: str, date: str) -> str:
        return f"{self.site(site)}:day:{date}"

    def unanswered(self, site: str) -> str:
        return f"{self.site(site)}:unanswered"

    def contact(self, site: str) -> str:
        return f"{self.site(site)}:contact"

    def revenue(self, site: str) -> str:
        return f"{self.site(site)}:revenue"

    def lastsid(self, site: str) -> str:
        return f"{self.site(site)}:lastsid"

    def pool_stats(self, site: str, pool: str, day: str) -> str:
        return f"{self.pool(site, pool)}:stats:{day}"

    def pool_leases(self, site: str, pool: str) -> str:
        return f"{self.pool(site, pool)}:leases"
