"""SMART App Launch 2.x authorization (issue 7): who is calling, with which scopes, for which patient.

* ``scopes.py``  – SMART v1/v2 scope strings → ``Scopes`` (what each resource scope permits);
* ``access.py``  – ``Access``: the caller of one request (client, user, launch patient, scopes, address),
                   kept in a context variable while the request runs;
* ``tokens.py``  – access and refresh tokens: opaque random strings, stored hashed with their grant
                   (``oauth_token``), looked up on every FHIR request (cached briefly in the process),
                   revocable.
"""
