"""From a source to candidate MIDIs and their piano renders: download, playlist, generate, render."""
