"""Publishing to YouTube: authorization and its token, the API client, the request, quota, the queue, resumable upload, the channel."""
