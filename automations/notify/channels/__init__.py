"""One sender per channel type, and the function that builds them for a config (build.py).

Kept free of imports so the config can check apprise URLs without loading httpx or the
API client: apprise, httpx and standardwebhooks are imported only by the sender that uses
them, when it is built or sends.
"""
