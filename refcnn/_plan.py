"""Former home of the call plans, now :mod:`refcnn.fast.plan`; kept for importers of it."""

from refcnn.fast.plan import ConvPlan, PoolPlan, check_grad, conv_plan, pool_plan, tap_slices

__all__ = ["ConvPlan", "PoolPlan", "check_grad", "conv_plan", "pool_plan", "tap_slices"]
