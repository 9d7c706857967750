"""The table layer (sans-IO): paths, destinations, best-path selection, Adj-RIBs, policy hooks."""
