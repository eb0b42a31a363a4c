import numpy as np
import pytest

from models.attention_stats import head_statistics

TOKENS = ["[CLS]", "a", "b", "[SEP]"]


def test_uniform_and_one_hot_heads():
    uniform = np.full((4, 4), 0.25)
    diagonal = np.eye(4)
    previous = np.eye(4, k=-1)
    previous[0, 0] = 1.0
    stats = head_statistics(np.stack([uniform, diagonal, previous])[None], TOKENS)
    assert stats["entropy"].shape == (1, 3)
    np.testing.assert_allclose(stats["entropy"][0], [2.0, 0.0, 0.0])
    np.testing.assert_allclose(stats["mean_distance"][0], [(6 + 4 + 4 + 6) / 16, 0.0, 3 / 4])
    np.testing.assert_allclose(stats["cls_share"][0], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(stats["sep_share"][0], [0.25, 0.25, 0.0])
    np.testing.assert_allclose(stats["max_weight"][0], [0.25, 1.0, 1.0])


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="T = 3"):
        head_statistics(np.full((4, 4), 0.25), TOKENS[:3])
