"""The App Home tab: what needs this person, gathered through the registry, drawn as cells."""
