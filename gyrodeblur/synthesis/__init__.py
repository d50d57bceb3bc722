"""Synthetic blurred (and noisy) images from sharp images and blur trajectories."""
