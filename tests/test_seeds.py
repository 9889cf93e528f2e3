import numpy as np
import pytest

from caloforge.geant4.run import event_seeds
from caloforge.models.common import seeded_generator, seeded_generators
from caloforge.seeds import states


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
@pytest.mark.parametrize("length", [1, 3, 4, 6])
def test_states_equal_numpy_seed_sequence(dtype, length):
    rng = np.random.default_rng(length)
    keys = rng.integers(0, 2**32, size=(40, length), dtype=np.uint64)
    keys[0], keys[1] = 0, 2**32 - 1
    for n_words in (1, 2, 5):
        expected = [
            np.random.SeedSequence(key.tolist()).generate_state(n_words, dtype) for key in keys
        ]
        got = states(keys, n_words, dtype)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.stack(expected))


def test_keys_wider_than_32_bits_and_bad_keys():
    keys = [[2**40 + 5, 1, 2], [3, 2**33, 0]]
    expected = [np.random.SeedSequence(k).generate_state(3) for k in keys]
    np.testing.assert_array_equal(states(keys, 3), np.stack(expected))
    with pytest.raises(ValueError):
        states([1, 2, 3])


def test_event_seeds_and_generators_are_functions_of_their_key():
    assert event_seeds(7, 10, 13)[1:] == event_seeds(7, 11, 13)
    assert all(0 < s < 2**63 for s in event_seeds(7, 0, 50))
    assert len(set(event_seeds(7, 0, 50))) == 50
    one = seeded_generator(7, 0xFA57, 4).initial_seed()
    many = seeded_generators([[7, 0xFA57, 3], [7, 0xFA57, 4]])
    assert many[1].initial_seed() == one != many[0].initial_seed()
