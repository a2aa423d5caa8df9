"""Jinja templates for titles, descriptions and prompts: the files a user edits."""
