"""The publishing budget: YouTube's two cost models, the Pacific day, the channel cap, publishAt spread."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from covermill.tasks.publish.quota import QuotaSettings, fits, pacific_day, publish_times, uploads_that_fit

UTC = timezone.utc


def test_the_quota_day_turns_at_midnight_pacific_not_utc():
    assert pacific_day(datetime(2026, 11, 24, 7, 59, tzinfo=UTC)) == date(2026, 11, 23)  # 23:59 PST
    assert pacific_day(datetime(2026, 11, 24, 8, 0, tzinfo=UTC)) == date(2026, 11, 24)
    assert pacific_day(datetime(2026, 7, 1, 6, 59, tzinfo=UTC)) == date(2026, 6, 30)  # PDT: UTC-7
    with pytest.raises(ValueError, match="aware"):
        pacific_day(datetime(2026, 11, 24))


def test_the_published_model_counts_calls_for_uploads_and_units_for_the_rest():
    settings = QuotaSettings(uploads_per_day=1000)
    # 100 units per upload (thumbnail + playlist item): the 10,000 units allow 100 uploads, as do the 100 calls
    assert uploads_that_fit({}, 0, settings) == 100
    assert uploads_that_fit({"videos.insert": 99}, 0, settings) == 1
    assert uploads_that_fit({"search.list": 99}, 0, settings) == 1  # 9,900 units spent searching
    assert not fits({"videos.insert": 100}, {"videos.insert": 1}, settings)


def test_the_older_model_charges_1600_units_per_upload():
    settings = QuotaSettings(model="units-per-upload", uploads_per_day=1000)
    assert uploads_that_fit({}, 0, settings) == 5  # 5 x (1600 + 100) = 8,500; a sixth needs 10,200
    assert uploads_that_fit({"videos.insert": 150}, 0, settings) == 0  # no call bucket, but no units left either
    assert fits({}, {"videos.insert": 6}, settings)  # 9,600 units


def test_the_channel_cap_holds_whatever_the_api_allows():
    assert uploads_that_fit({}, 0, QuotaSettings()) == 3
    assert uploads_that_fit({"videos.insert": 2}, 2, QuotaSettings()) == 1
    assert uploads_that_fit({}, 3, QuotaSettings()) == 0


def test_publish_times_spread_over_what_is_left_of_the_window():
    paris = QuotaSettings(publish_timezone="Europe/Paris", publish_window=(9, 21))
    morning = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 07:00 in Paris
    times = publish_times(3, morning, paris)
    local = [t.astimezone(ZoneInfo("Europe/Paris")) for t in times]
    assert [(t.hour, t.minute) for t in local] == [(11, 0), (15, 0), (19, 0)]
    assert all(t.tzinfo == UTC for t in times)

    afternoon = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 16:00 in Paris: 5 hours left
    local = [t.astimezone(ZoneInfo("Europe/Paris")) for t in publish_times(2, afternoon, paris)]
    assert [(t.day, t.hour, t.minute) for t in local] == [(23, 17, 15), (23, 19, 45)]

    late = datetime(2026, 11, 23, 19, 45, tzinfo=UTC)  # 20:45 in Paris: tomorrow's window
    local = [t.astimezone(ZoneInfo("Europe/Paris")) for t in publish_times(2, late, paris)]
    assert [(t.day, t.hour) for t in local] == [(24, 12), (24, 18)]
    assert publish_times(0, late, paris) == []
    assert all(b - a >= timedelta(minutes=30) for a, b in zip(local, local[1:]))


def test_bad_settings_are_one_sentence():
    with pytest.raises(ValidationError, match="unknown time zone 'Mars/Olympus'"):
        QuotaSettings(publish_timezone="Mars/Olympus")
    with pytest.raises(ValidationError, match="publish_window must be two hours"):
        QuotaSettings(publish_window=(21, 9))
