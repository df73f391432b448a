"""Preflight: what every GPU rule of the study needs, measured on the machine it will run on (README "Preflight")."""
