"""A multi-user FTP server on socketserver threads, its users, and an FTP client."""
