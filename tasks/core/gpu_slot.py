"""The Prefect global concurrency slot that model calls hold, so two flows never fight for one GPU.

`concurrency(..., strict=True)` refuses to run when the limit does not exist (without strict a
missing limit is silently not enforced), so the limit is created on first use with the configured
number of slots. Prefect leases the slot and renews it while held: a killed run gives it back
when its lease (`gpu.lease_s`) runs out. `covermill doctor` shows who holds what, and
`covermill doctor --reset-gpu-slot` frees a slot at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import Field

from covermill.models.device import Hold
from covermill.tasks.core.errors import CovermillError
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
        acquired = False
        try:
            with concurrency(name, occupy=1, strict=True, timeout_seconds=timeout_s, lease_duration=lease_s):
                acquired = True
                yield
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
