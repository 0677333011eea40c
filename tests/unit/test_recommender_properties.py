"""Properties every recommender keeps, whatever the samples: finite non-negative values, ordered
bounds, and a reason instead of an exception for bad input."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bridgescale.models import registry
from bridgescale.models.base import OomEvents, SampleBatch

START = 1_700_000_000.0
RECOMMENDERS = [n for n in registry.names() if n != registry.ORACLE]

usage_values = st.one_of(
    st.floats(min_value=0, max_value=1e12),
    st.just(float("nan")),
    st.just(-1.0),  # a counter reset turned into a negative rate
    st.just(float("inf")),
)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(RECOMMENDERS),
    cpu=st.lists(usage_values, min_size=1, max_size=400),
    memory_scale=st.floats(min_value=0, max_value=4),
    step_minutes=st.sampled_from([1, 5, 60, 600]),
)
def test_recommendations_are_finite_non_negative_and_ordered(
    name: str, cpu: list[float], memory_scale: float, step_minutes: int
) -> None:
    recommender = registry.create(name)
    state = recommender.new_state(2)
    usage = np.asarray(cpu)
    with np.errstate(invalid="ignore"):  # inf x 0 is NaN: an unmeasured sample, as intended
        memory = usage * 1e6 * memory_scale
    count = usage.size
    time = START + 60.0 * step_minutes * np.arange(count)
    samples = SampleBatch(
        np.arange(count, dtype=np.int64) % 2,
        time,
        {"cpu": usage, "memory": memory, "vram": usage * 1e7},
    )
    for part in np.array_split(np.arange(count), 3):
        batch = SampleBatch(
            samples.container[part], time[part], {r: v[part] for r, v in samples.usage.items()}
        )
        recommender.observe(state, batch, OomEvents.none())
    for recommendation in recommender.recommend(state, float(time[-1]) + 60).values():
        has = recommendation.reason == 0
        values = [recommendation.lower_bound, recommendation.target, recommendation.upper_bound]
        for value in values:
            assert np.all(np.isfinite(value[has])) and np.all(value[has] >= 0)
            assert np.all(np.isnan(value[~has]))
        assert np.all(values[0][has] <= values[1][has])
        assert np.all(values[1][has] <= values[2][has])
