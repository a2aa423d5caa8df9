"""What a viewer sees: the thumbnail (art, picture, lettering, fonts), the video, title and description, the review gallery."""
