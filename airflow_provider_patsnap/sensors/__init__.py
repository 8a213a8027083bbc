"""sensors of the PatSnap provider."""
