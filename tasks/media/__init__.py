"""What a viewer sees: the thumbnail (art, picture, lettering, fonts), the video, title and description, the review gallery."""

from covermill.tasks.media.imagemagick import use_covermill_policy

use_covermill_policy()  # before any module here imports Wand (imagemagick.py says why)
