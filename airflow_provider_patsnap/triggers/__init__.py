"""triggers of the PatSnap provider."""
