"""operators of the PatSnap provider."""
