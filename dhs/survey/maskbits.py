"""DR10 MASKBITS (the coadd ``-maskbits.fits.fz`` HDU1 and the catalogue MASKBITS column).

One place for the bit names; everything else refers to :class:`MaskBit`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum

import numpy as np


class MaskBit(IntEnum):
    """Bit numbers (not values) of DR10 MASKBITS; the mask value is ``1 << bit``."""

    NPRIMARY = 0      # not inside the brick's unique area
    BRIGHT = 1        # bright star
    SATUR_G = 2       # saturated in g
    SATUR_R = 3
    SATUR_Z = 4
    ALLMASK_G = 5     # all exposures masked in g
    ALLMASK_R = 6
    ALLMASK_Z = 7
    WISEM1 = 8        # WISE W1 bright-star mask
    WISEM2 = 9        # WISE W2 bright-star mask
    BAILOUT = 10      # blob bailed out of fitting
    MEDIUM = 11       # medium-bright star
    GALAXY = 12       # large galaxy (SGA)
    CLUSTER = 13      # globular cluster
    SATUR_I = 14
    ALLMASK_I = 15
    SUB_BLOB = 16

    @property
    def value_mask(self) -> int:
        """The integer mask ``1 << bit``."""
        return 1 << int(self)


def _to_bit(b: MaskBit | str | int) -> MaskBit:
    if isinstance(b, MaskBit):
        return b
    if isinstance(b, str):
        try:
            return MaskBit[b.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown MASKBITS name {b!r}; known: {[m.name for m in MaskBit]}") from None
    if isinstance(b, (int, np.integer)) and not isinstance(b, bool):
        try:
            return MaskBit(int(b))
        except ValueError:
            raise ValueError(f"MASKBITS bit number {b} outside 0–16") from None
    raise TypeError(f"mask bit must be a MaskBit, name or bit number, got {b!r}")


def mask_of(bits: Iterable[MaskBit | str | int]) -> int:
    """OR of ``1 << bit`` over ``bits`` (MaskBit members, names such as ``"BRIGHT"``, or bit numbers)."""
    m = 0
    for b in bits:
        m |= 1 << int(_to_bit(b))
    return m


def bit_names(value: int) -> list[str]:
    """Names of the bits set in a MASKBITS value (unknown high bits are named ``BIT<n>``)."""
    value = int(value)
    out = []
    n = 0
    while value >> n:
        if (value >> n) & 1:
            out.append(MaskBit(n).name if n in MaskBit._value2member_map_ else f"BIT{n}")
        n += 1
    return out


#: Bits that make a pixel unusable for injection by default.
DEFAULT_BAD_BITS: tuple[MaskBit, ...] = (
    MaskBit.BRIGHT, MaskBit.SATUR_G, MaskBit.SATUR_R, MaskBit.SATUR_Z,
    MaskBit.ALLMASK_G, MaskBit.ALLMASK_R, MaskBit.ALLMASK_Z, MaskBit.BAILOUT, MaskBit.MEDIUM,
)
#: WISE bright-star mask bits.
WISE_BITS: tuple[MaskBit, ...] = (MaskBit.WISEM1, MaskBit.WISEM2)

DEFAULT_BAD_MASK: int = mask_of(DEFAULT_BAD_BITS)
WISE_MASK: int = mask_of(WISE_BITS)
