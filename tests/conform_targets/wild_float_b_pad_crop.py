"""Two bugs at once: conv_single_step's float(b) (NumPy 2 refuses it, so conv_forward raises on
every case) and conv_backward's [pad:-pad] crop, which shows only when conv_backward is judged
on its own, with the reference's cache."""

from bug_pad_crop import Impl as PadCrop
from notebook_loops import export
from wild_float_b import Impl as FloatB


class Impl(FloatB, PadCrop):
    pass


globals().update(export(Impl()))
