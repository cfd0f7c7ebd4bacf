"""SMART discovery (``/.well-known/smart-configuration``), OpenID Connect discovery and the CapabilityStatement's
``rest.security``: what a SMART client reads before it starts. The issuer is the FHIR base URL; the OAuth endpoints
live under ``/auth/`` on the same host."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fhir_server.config import Settings

__all__ = ["CAPABILITIES", "SCOPES", "endpoints", "openid_configuration", "security", "smart_configuration"]

CAPABILITIES = [
    "launch-ehr", "launch-standalone", "client-public", "client-confidential-symmetric",
    "client-confidential-asymmetric", "context-ehr-patient", "context-ehr-encounter", "context-standalone-patient",
    "context-banner", "context-style", "permission-offline", "permission-online", "permission-patient",
    "permission-user", "permission-v1", "permission-v2", "sso-openid-connect", "authorize-post",
]
SCOPES = [
    "openid", "fhirUser", "profile", "launch", "launch/patient", "offline_access", "online_access",
    "patient/*.rs", "patient/*.read", "patient/*.cruds", "patient/*.write",
    "user/*.rs", "user/*.read", "user/*.cruds", "user/*.write",
    "system/*.rs", "system/*.read", "system/*.cruds", "system/launch",
]
GRANT_TYPES = ["authorization_code", "refresh_token", "client_credentials"]
AUTH_METHODS = ["client_secret_basic", "private_key_jwt"]


def auth_root(settings: Settings) -> str:
    """The absolute URL of the authorization server's pages (same scheme and host as the FHIR base URL)."""
    parts = urlsplit(settings.fhir_base)
    return f"{parts.scheme}://{parts.netloc}/auth"


def endpoints(settings: Settings) -> dict[str, str]:
    """The absolute URLs of the OAuth endpoints."""
    root = auth_root(settings)
    return {"authorization_endpoint": f"{root}/authorize", "token_endpoint": f"{root}/token",
            "introspection_endpoint": f"{root}/introspect", "revocation_endpoint": f"{root}/revoke",
            "jwks_uri": f"{root}/jwks"}


def smart_configuration(settings: Settings) -> dict[str, Any]:
    return {
        "issuer": settings.fhir_base,
        **endpoints(settings),
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "code_challenge_methods_supported": ["S256"],
        "capabilities": CAPABILITIES,
    }


def openid_configuration(settings: Settings) -> dict[str, Any]:
    urls = endpoints(settings)
    return {
        "issuer": settings.fhir_base,
        "authorization_endpoint": urls["authorization_endpoint"],
        "token_endpoint": urls["token_endpoint"],
        "jwks_uri": urls["jwks_uri"],
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "fhirUser", "profile", "offline_access", "online_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "fhirUser", "name"],
        "grant_types_supported": GRANT_TYPES,
        "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["RS384", "ES384"],
        "code_challenge_methods_supported": ["S256"],
    }


def security(settings: Settings) -> dict[str, Any]:
    """``CapabilityStatement.rest[0].security``: the SMART-on-FHIR service and the oauth-uris extension."""
    urls = endpoints(settings)
    return {
        "cors": True,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}], "text": "OAuth2 using SMART-on-FHIR profile"}],
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": urls["authorization_endpoint"]},
                {"url": "token", "valueUri": urls["token_endpoint"]},
                {"url": "introspect", "valueUri": urls["introspection_endpoint"]},
                {"url": "revoke", "valueUri": urls["revocation_endpoint"]},
            ],
        }],
        "description": "SMART App Launch 2.0 (EHR and standalone launch, PKCE S256) and SMART Backend Services.",
    }
