"""Running totals of per-update events: counted every update, kept across a checkpoint."""

import pytest

from rlrun.core.tally import Tally


def test_totals_count_every_update_and_survive_a_checkpoint():
    tally = Tally("trpo", ("steps_rejected",))
    assert tally.add(steps_rejected=False) == {"trpo/updates": 1.0, "trpo/steps_rejected": 0.0}
    assert tally.add(steps_rejected=True) == {"trpo/updates": 2.0, "trpo/steps_rejected": 1.0}
    resumed = Tally("trpo", ("steps_rejected",))
    resumed.load_state_dict(tally.state_dict())
    assert resumed.add(steps_rejected=True) == {"trpo/updates": 3.0, "trpo/steps_rejected": 2.0}


def test_a_checkpoint_from_before_the_tally_starts_it_at_zero_and_an_unknown_event_is_an_error():
    tally = Tally("acktr", ("steps_clipped",))
    tally.load_state_dict(None)
    assert tally.add(steps_clipped=True) == {"acktr/updates": 1.0, "acktr/steps_clipped": 1.0}
    with pytest.raises(KeyError, match="steps_rejected"):
        tally.add(steps_rejected=True)
