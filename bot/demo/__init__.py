"""`forge playground --demo`: a small live ClientForge beside the playground, in its own places."""
