"""DETR (Carion et al., 2020) on the project's instrumented attention core."""
