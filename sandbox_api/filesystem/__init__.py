"""Files: read, write, list, trees, copies, multipart uploads."""
