"""The optional approval step (upload.approval): a person decides in the Prefect UI before a cover
may join the publishing queue.

The song's run pauses with a typed form: approve the pick, pick another candidate (the cover is
re-rendered with it and the form comes back, so the new one can be heard first), or reject the
song. Unanswered within upload.approval_timeout_s, the song stays out of the queue until a later
run of it is approved.
"""

from __future__ import annotations

from typing import Literal

from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from covermill.tasks.core.records import Candidate, Ranking, Song

POLL_S = 3


class Approval(RunInput):
    decision: Literal["approve", "pick another", "reject"] = Field("approve", description="What happens to this cover.")
    candidate: str = Field("", description="With 'pick another': the candidate's id, from the ranking table artifact.")


def _form_text(song: Song, winner: Candidate, ranking: Ranking, review_page: str) -> str:
    accepted = [s for s in ranking.scores if not s.rejected]
    lines = [f"**{song.title}**: the pick is `{winner.id}`. Listen on the review page ({review_page}) or to "
             f"the winner's video, then decide.", "", "Accepted candidates, best first:", ""]
    lines += [f"- `{s.candidate_id}` (combined {s.combined:.3f}, Qmax {s.qmax:.3f})" for s in accepted[:12]]
    return "\n".join(lines)


def ask(song: Song, winner: Candidate, ranking: Ranking, review_page: str, timeout_s: int) -> Approval | None:
    """Pause this flow run until a person answers; None when nobody did in time."""
    form = Approval.with_initial_data(description=_form_text(song, winner, ranking, review_page), decision="approve")
    try:
        return pause_flow_run(wait_for_input=form, timeout=timeout_s, poll_interval=POLL_S)
    except FlowPauseTimeout:
        return None


def choice_problem(decision: Approval, ranking: Ranking) -> str | None:
    """Why a 'pick another' cannot be followed (the form then comes back), or None."""
    if decision.decision != "pick another":
        return None
    accepted = {s.candidate_id for s in ranking.scores if not s.rejected}
    if decision.candidate not in accepted:
        return f"{decision.candidate!r} is not an accepted candidate of this song; pick one of the ranking table's accepted ids"
    return None
