"""The Prefect global concurrency slot that model calls hold, so two flows never fight for one GPU.

`concurrency(..., strict=True)` refuses to run when the limit does not exist (without strict a
missing limit is silently not enforced), so the limit is created on first use with the configured
number of slots. Prefect leases the slot and renews it while held: a killed run gives it back
when its lease (`gpu.lease_s`) runs out. `covermill doctor` shows who holds what, and
`covermill doctor --reset-gpu-slot` frees a slot at once.

Without a configured server each command starts Prefect's temporary one, and those all keep the
limit in the same database (PREFECT_HOME's prefect.db) but their leases in their own memory, and run
no service that takes expired leases back: a command killed while holding the slot held it for
good (measured: the next command, past the lease, found it held and waited out gpu.wait_s; with no
wait_s, the default, it waits forever). So there each holder also
leaves a mark named after its host and process (`HolderMarks`), and the next holder gives back the
slot of every mark whose process is gone.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import Field

from covermill.models.device import Hold
from covermill.tasks.core.errors import CovermillError
from covermill.tasks.core.host import process_alive
from covermill.tasks.core.leftovers import TAGGED, leftover_tag
from covermill.tasks.core.settings import Settings

GPU_LIMIT = "gpu"


class GpuSettings(Settings):
    """The slot every torch model call holds (generate and thumbnail alike)."""

    limit: str | None = GPU_LIMIT  # the Prefect global concurrency limit; null holds none
    slots: int = Field(default=1, ge=1)  # slots it is created with when missing
    wait_s: float | None = Field(default=None, gt=0)  # give up waiting for the slot after this; null waits
    lease_s: float = Field(default=300.0, ge=60)  # a killed run's slot comes back after this (Prefect's minimum: 60)

    def holder(self) -> Hold:
        return slot_holder(self.limit, self.slots, self.wait_s, self.lease_s)


def ensure_limit(name: str, slots: int) -> bool:
    """Create the global concurrency limit `name` unless it exists; True when it was created."""
    import httpx
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            try:
                client.read_global_concurrency_limit_by_name(name)
                return False
            except ObjectNotFound:
                pass
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=slots))
            except ObjectAlreadyExists:  # another run made it meanwhile
                return False
            return True
    except (httpx.HTTPError, OSError) as exc:
        raise CovermillError(
            f"could not reach the Prefect server to set up the {name!r} concurrency limit ({exc}); start the "
            f"server, or create the limit there with `prefect gcl create {name} --limit {slots}`."
        ) from exc


class HolderMarks:
    """Who holds a slot of the limit on this machine's temporary servers: one empty file per hold,
    `<host>~<pid>-<random>` as tasks/core/leftovers.py names temporary files, in PREFECT_HOME."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    @classmethod
    def for_limit(cls, name: str) -> HolderMarks:
        from prefect.settings import PREFECT_HOME

        return cls(Path(PREFECT_HOME.value()) / "covermill-gpu-holders" / re.sub(r"[^A-Za-z0-9_.-]", "_", name))

    def add(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        mark = self.folder / f"covermill-slot-{leftover_tag()}-{uuid.uuid4().hex[:8]}"
        mark.touch()
        return mark

    def take_dead(self) -> list[float]:
        """Remove the marks of holders that died on this host: the seconds each had held its slot
        (each is a slot to give back). Removing is the claim: of two runs that find the same mark,
        one gives its slot back."""
        held = []
        for mark in self.folder.glob("covermill-slot-*") if self.folder.is_dir() else []:
            found = TAGGED.match(mark.name)
            if found is None or found["host"] != leftover_tag().split("~")[0] or process_alive(int(found["pid"])):
                continue
            try:
                since = mark.stat().st_mtime
                mark.unlink()
            except FileNotFoundError:
                continue
            held.append(max(time.time() - since, 0.001))
        return held


def on_temporary_server() -> bool:
    """Whether this process talks to Prefect's temporary server (no PREFECT_API_URL configured)."""
    from prefect.settings import PREFECT_API_URL

    return not PREFECT_API_URL.value()


def give_back_dead_holders(name: str, marks: HolderMarks) -> int:
    """Release one slot of `name` per dead holder's mark; how many."""
    from prefect.client.orchestration import get_client

    held = marks.take_dead()
    if held:
        with get_client(sync_client=True) as client:
            client.release_concurrency_slots([name], len(held), occupancy_seconds=sum(held))
    return len(held)


def slot_holder(name: str | None = GPU_LIMIT, slots: int = 1, timeout_s: float | None = None, lease_s: float = 300.0) -> Hold:
    """A `hold()` for generators: each call holds one slot of the limit `name` (None: hold nothing)."""
    from contextlib import nullcontext

    if name is None:
        return nullcontext
    created: list[bool] = []

    @contextmanager
    def hold() -> Iterator[None]:
        from prefect.concurrency.sync import concurrency

        if not created:
            created.append(ensure_limit(name, slots))
        marks = HolderMarks.for_limit(name) if on_temporary_server() else None
        if marks is not None:
            give_back_dead_holders(name, marks)
        acquired = False
        mark = None
        try:
            try:
                with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s, lease_duration=lease_s):
                    acquired = True
                    mark = marks.add() if marks is not None else None
                    yield
            finally:
                # removed once the slot is back: a kill in between makes the next holder release one
                # slot too many (Prefect stops at 0; at worst two runs share the GPU once), not too few
                if mark is not None:
                    mark.unlink(missing_ok=True)
        except TimeoutError as exc:
            if acquired:  # the model's own timeout, not ours
                raise
            raise CovermillError(
                f"waited {timeout_s:g} s for the {name!r} concurrency slot; another run holds it (see `prefect gcl ls`)."
            ) from exc

    return hold


def slot_usage(name: str) -> tuple[int, int] | None:
    """(slots held, slots) of the limit `name` on the configured server; None when it does not exist."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            return None
    return limit.active_slots, limit.limit


def reset_slots(name: str) -> int:
    """Free every slot of `name` (after a crash, without waiting for the leases); returns how many were held."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            held = client.read_global_concurrency_limit_by_name(name).active_slots
        except ObjectNotFound:
            raise CovermillError(f"there is no {name!r} concurrency limit on this Prefect server; nothing to reset.") from None
        client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active_slots=0))
    return held
