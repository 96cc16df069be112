"""dhs.io.stamps: float32 LE (bands, H, W) codec, mask codec, the npz encoding."""

import io

import numpy as np
import pytest

from dhs.io.stamps import decode, decode_mask, decode_npz, encode, encode_mask, encode_npz


def test_roundtrip_bit_exact_and_little_endian():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 64, 64)).astype(np.float32)
    a[0, 0, 0] = -0.0
    blob = encode(a)
    assert len(blob) == 3 * 64 * 64 * 4
    # independent reference: explicit little-endian float32 bytes in C order
    assert blob == a.astype("<f4").tobytes(order="C")
    b = decode(blob, (3, 64, 64))
    assert b.dtype == np.float32 and b.shape == (3, 64, 64)
    assert b.tobytes() == a.tobytes()
    assert b.flags.writeable


def test_decode_shape_inference_and_size():
    a = np.arange(3 * 5 * 5, dtype=np.float32).reshape(3, 5, 5)
    assert np.array_equal(decode(encode(a)), a)
    assert np.array_equal(decode(encode(a), size=5), a)


def test_big_endian_input_is_converted():
    a = np.linspace(-1, 1, 12, dtype=">f8").reshape(3, 2, 2)
    assert np.array_equal(decode(encode(a), (3, 2, 2)), a.astype(np.float32))


@pytest.mark.parametrize("blob,shape", [(b"", (3, 1, 1)), (b"\0" * 7, None), (b"\0" * 48, (3, 3, 3))])
def test_decode_rejects_bad_blobs(blob, shape):
    with pytest.raises(ValueError):
        decode(blob, shape)


def test_decode_none_names_failure_rows():
    with pytest.raises(ValueError, match="cutout_ok"):
        decode(None)


def test_mask_roundtrip():
    m = np.array([[0, 1 << 16], [3, 2**31 - 1]], dtype=np.int64)
    assert np.array_equal(decode_mask(encode_mask(m), 2), m.astype(np.int32))
    with pytest.raises(ValueError):
        decode_mask(encode_mask(m), 3)


def test_npz_keys_and_roundtrip():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 8, 8)).astype(np.float32)
    blob = encode_npz(a)
    with np.load(io.BytesIO(blob)) as z:      # what a user of the seed's format does
        assert sorted(z.files) == ["image_g", "image_r", "image_z"]
        assert np.array_equal(z["image_r"], a[1])
    assert np.array_equal(decode_npz(blob), a)
