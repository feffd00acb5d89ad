from streamapp.rul.serving import SHAPE_STEP, shape_bucket


def test_shape_bucket_bounds_the_batch_shapes() -> None:
    assert [shape_bucket(n) for n in (0, 1, 2, 3, 5, 33, 64)] == [0, 1, 2, 4, 8, 64, 64]
    assert [shape_bucket(n) for n in (65, 128, 129, 500, 512)] == [128, 128, 192, 512, 512]
    sizes = {shape_bucket(n) for n in range(1, 2049)}
    assert len(sizes) == 7 + 2048 // SHAPE_STEP - 1  # 1..64 in powers of two, then steps
    assert all(0 <= shape_bucket(n) - n < max(n, SHAPE_STEP) for n in range(1, 2049))
