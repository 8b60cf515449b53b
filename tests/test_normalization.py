import numpy as np

from rlrun.normalization import ObsNormalizer, RunningMeanStd


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(1000, 3))
    rms = RunningMeanStd((3,))
    for chunk in np.array_split(data, 7):
        rms.update(chunk)
    np.testing.assert_allclose(rms.mean, data.mean(0), rtol=1e-6)
    np.testing.assert_allclose(rms.var, data.var(0), rtol=1e-4)


def test_obs_normalizer_state_round_trip_and_clip():
    norm = ObsNormalizer((2,), clip=5.0)
    norm(np.array([[0.0, 100.0], [2.0, 300.0]]), update=True)
    other = ObsNormalizer((2,), clip=5.0)
    other.rms.load_state_dict(norm.rms.state_dict())
    x = np.array([[1.0, 1e6]])
    np.testing.assert_array_equal(norm(x), other(x))
    assert other(x)[0, 1] == 5.0
