"""Plotly figures built from numpy arrays and labels. Knows no model."""
