"""pools.toml validation: every refusal names its key path."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from support import BASE_TOML, ROOT

from attribution import config as configmod
from attribution.cli import main
from attribution.errors import ConfigError


def problems(text: str) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        configmod.parse(tomllib.loads(text))
    return dict(info.value.problems)


def site_toml(extra_site: str = "", pools: str = "", top: str = "") -> str:
    return f"""{top}
[[site]]
id = "acme"
domains = ["acme.example"]
country = "UA"
timezone = "Europe/Kyiv"
replace = ["+380 57 700 00 00", "0 800 300 100"]
api_key_env = "ACME_API_KEY"
{extra_site}
  [[site.region]]
  id = "kharkiv"
  geoip = {{ countries = ["UA"], subdivisions = ["63"] }}
{pools}
"""


GOOD_POOL = """
  [[site.pool]]
  id = "paid"
  match = { medium = "cpc" }
  numbers = ["+380 57 700 00 01"]
"""


def test_example_pools_file_is_valid_and_numbers_are_e164() -> None:
    cfg = configmod.load(ROOT / "pools.toml")
    assert len(cfg.sites) >= 3
    shop = cfg.site("tekhnomarket")
    assert shop is not None
    assert shop.replace[1].e164 == "+380800300100"
    assert all(n.e164.startswith("+380") for p in shop.pools for n in p.numbers)


def test_national_formats_use_the_site_country() -> None:
    cfg = configmod.parse(tomllib.loads(site_toml(pools=GOOD_POOL)))
    site = cfg.sites[0]
    assert [p.e164 for p in site.replace] == ["+380577000000", "+380800300100"]
    assert site.replace[1].national == "800300100"
    assert site.replace[1].country_code == "380"


def test_unknown_key_suggests_the_near_spelling() -> None:
    found = problems(site_toml(pools=GOOD_POOL.replace("numbers", "nubmers")))
    assert "site[0].pool[0].nubmers" in found
    assert "did you mean 'numbers'" in found["site[0].pool[0].nubmers"]
    top = problems(site_toml(pools=GOOD_POOL, top="hold_minute = 10"))
    assert "hold_minutes" in top["hold_minute"]


def test_bad_number_is_named_with_its_index() -> None:
    bad = GOOD_POOL.replace('["+380 57 700 00 01"]', '["+380 57 700 00 01", "call us"]')
    found = problems(site_toml(pools=bad))
    assert "'call us' is not a phone number" in found["site[0].pool[0].numbers[1]"]


def test_same_tracking_number_in_two_pools_or_two_sites() -> None:
    two = GOOD_POOL + GOOD_POOL.replace('"paid"', '"paid2"')
    found = problems(site_toml(pools=two))
    assert "already used at site[0].pool[0].numbers[0]" in found["site[0].pool[1].numbers[0]"]
    other = site_toml(pools=GOOD_POOL) + site_toml(pools=GOOD_POOL).replace('"acme"', '"b"')
    found = problems(other)
    assert "site[1].pool[0].numbers[0]" in found
    assert "site[1].id" not in found


def test_tracking_number_equal_to_own_number() -> None:
    found = problems(site_toml(pools=GOOD_POOL.replace("+380 57 700 00 01", "057 700 00 00")))
    assert "site's own number" in found["site[0].pool[0].numbers[0]"]


def test_pool_replace_must_be_an_own_number() -> None:
    found = problems(site_toml(pools=GOOD_POOL + '  replace = "+380 44 111 22 33"\n'))
    assert "not one of the site's own numbers" in found["site[0].pool[0].replace"]


def test_pool_region_must_be_defined() -> None:
    found = problems(site_toml(pools=GOOD_POOL.replace('medium = "cpc"', 'region = "lviv"')))
    msg = found["site[0].pool[0].match.region"]
    assert "'lviv' is not defined" in msg and "kharkiv" in msg


def test_bad_timezone_on_exhausted_duplicates_and_empty_pool() -> None:
    text = site_toml(
        pools=GOOD_POOL
        + '  on_exhausted = "drop"\n'
        + GOOD_POOL.replace('["+380 57 700 00 01"]', "[]"),
    ).replace("Europe/Kyiv", "Europe/Kharkiv")
    found = problems(text)
    assert "not an IANA timezone" in found["site[0].timezone"]
    assert "'drop' is not one of share-oldest, fallback" in found["site[0].pool[0].on_exhausted"]
    assert "duplicate pool id 'paid'" in found["site[0].pool[1].id"]
    assert "at least one tracking number" in found["site[0].pool[1].numbers"]


def test_duplicate_site_ids() -> None:
    text = site_toml(pools=GOOD_POOL) + site_toml().replace('"acme.example"', '"b.example"')
    assert "duplicate site id 'acme'" in problems(text)["site[1].id"]


def test_all_problems_are_listed_at_once() -> None:
    text = site_toml(
        pools=GOOD_POOL.replace('"cpc"', '"cpc", colour = 1'), top="hold_minutes = -1"
    ).replace("Europe/Kyiv", "Mars/Base")
    found = problems(text)
    assert {"hold_minutes", "site[0].timezone", "site[0].pool[0].match.colour"} <= set(found)


def test_missing_secret_env_is_a_start_up_error_naming_the_site() -> None:
    cfg = configmod.parse(tomllib.loads(BASE_TOML))
    with pytest.raises(ConfigError) as info:
        cfg.with_secrets({"ACME_API_KEY": "k" * 20})
    assert "ACME_GA4_SECRET" in str(info.value)
    assert "site[0].ga4.api_secret_env" in dict(info.value.problems)


def test_secrets_never_show_in_repr() -> None:
    cfg = configmod.parse(tomllib.loads(BASE_TOML)).with_secrets(
        {"ACME_API_KEY": "super-secret-key", "ACME_GA4_SECRET": "ga-secret-value"}
    )
    text = repr(cfg)
    assert "super-secret-key" not in text and "ga-secret-value" not in text
    assert cfg.sites[0].api_key == "super-secret-key"


def test_most_specific_pool_wins_then_file_order() -> None:
    cfg = configmod.parse(tomllib.loads(BASE_TOML))
    site = cfg.sites[0]
    chosen = site.choose_pools({"medium": "cpc", "region": "kharkiv"})
    pool = chosen["+380577000000"]
    assert pool is not None and pool.id == "kharkiv-paid"
    pool = site.choose_pools({"medium": "cpc", "region": ""})["+380577000000"]
    assert pool is not None and pool.id == "paid"
    assert site.choose_pools({"medium": "organic"})["+380577000000"] is None
    tollfree = site.choose_pools({"medium": "organic"})["+380800300100"]
    assert tollfree is not None and tollfree.id == "tollfree"


def test_check_command_lists_every_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "pools.toml"
    path.write_text(
        site_toml(pools=GOOD_POOL.replace('"cpc"', '"cpc", colour = 1'), top="hold_minutes = 0")
    )
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "2 problems" in err
    assert "site[0].pool[0].match.colour: unknown key" in err
    assert "hold_minutes: must be above 0" in err


def test_check_command_summarises_a_good_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(ROOT / "pools.toml")]) == 0
    out = capsys.readouterr().out
    assert "tekhnomarket" in out and "pool kharkiv-paid: 4 numbers" in out
    assert "regions: kharkiv, kyiv, odesa" in out


def test_toml_syntax_error_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "pools.toml"
    path.write_text("[[site]\nid=")
    with pytest.raises(ConfigError) as info:
        configmod.load(path)
    assert "(syntax)" in dict(info.value.problems)


def test_an_event_name_ga4_would_refuse_is_a_config_error() -> None:
    text = BASE_TOML.replace(
        'api_secret_env = "ACME_GA4_SECRET" }',
        'api_secret_env = "ACME_GA4_SECRET", event_name = "ga_call" }',
    )
    assert "reserved prefix" in problems(text)["site[0].ga4.event_name"]
