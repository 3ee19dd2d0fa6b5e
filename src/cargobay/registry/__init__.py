"""The registry domain: blobs, uploads, manifests, tags, referrers. It knows nothing of HTTP."""
