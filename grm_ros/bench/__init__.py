"""Speed measurements (``make bench``): figures with percentiles and same-run ratios, never timed asserts."""
