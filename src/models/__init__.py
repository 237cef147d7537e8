"""Models: the networks (an ImageNet backbone or a small CNN, and a top), the fast forward of a frozen
backbone, numeric precision, calibration (a temperature folded into the last layer) and scoring."""
