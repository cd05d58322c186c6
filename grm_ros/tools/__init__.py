"""Command-line tools that check or calibrate a model; no library layer imports them."""
