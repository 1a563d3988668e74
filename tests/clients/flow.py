"""The full flow through the Python packages that openapi-python-client
generated from the API documents (roster_v1, roster_v2: on PYTHONPATH, as
generated). Each step checks the status and the generated model it parses
into, and prints one line. run.py runs it.

Usage: flow.py BASE_URL PREFIX   (PREFIX: letters and digits, new each run)
"""

import hashlib
import sys
from io import BytesIO

from roster_v1 import AuthenticatedClient, Client
from roster_v1.api.auth import (
    account_end_session,
    account_list_sessions,
    account_request_password_reset,
    account_resend_verification,
    account_verify_email,
    auth_login,
    auth_logout,
    auth_refresh,
    auth_token,
)
from roster_v1.api.me import me_change_password, me_delete_me, me_get_me, me_patch_me
from roster_v1.api.uploads import (
    uploads_create_upload,
    uploads_delete_upload,
    uploads_get_upload,
    uploads_get_upload_content,
)
from roster_v1.api.users import search_search_users, users_create_user, users_list_users
from roster_v1.models import (
    Accepted,
    ChangePasswordRequest,
    CreateUserRequest,
    ErrorBody,
    LoginRequest,
    PasswordResetRequest,
    PatchMeRequest,
    RefreshRequest,
    Role,
    SessionResponse,
    TokenForm,
    TokenFormGrantType,
    TokenResponse,
    UploadResponse,
    UploadsCreateUploadBody,
    UserResponse,
    VerifyEmailRequest,
)
from roster_v1.types import File
from roster_v2 import AuthenticatedClient as ClientV2
from roster_v2.api.users import v2_list_users
from roster_v2.models import UserPage
from roster_v2.models import UserResponse as UserResponseV2
from roster_v2.types import UNSET as UNSET_V2

EXTRA_USERS = 4
PAGE = 2


def expect(response, status, model):
    """The response has `status` and parsed into `model` (None: no body)."""
    assert response.status_code == status, f"status {response.status_code}, expected {status}: {response.content[:300]!r}"
    if model is None:
        assert response.parsed is None, response.parsed
    else:
        assert isinstance(response.parsed, model), f"parsed as {type(response.parsed).__name__}, not {model}"
    return response.parsed


def ok(title):
    print(f"ok   {title}", flush=True)


def main():
    base, prefix = sys.argv[1], sys.argv[2]
    password = f"Passw0rd{prefix}"
    new_password = f"N3wPassw0rd{prefix}"
    # Undocumented statuses raise: every answer must be one the document lists.
    public = Client(base_url=base, raise_on_unexpected_status=True)

    def signed_in(token):
        return AuthenticatedClient(base_url=base, token=token, raise_on_unexpected_status=True)

    # Register the user of the flow and a few more, so that v2 has pages.
    names = [f"{prefix}u{i}" for i in range(EXTRA_USERS + 1)]
    users = {}
    for name in names:
        response = users_create_user.sync_detailed(
            client=public, body=CreateUserRequest(username=name, email=f"{name}@Example.com", password=password, age=30)
        )
        user = expect(response, 201, UserResponse)
        assert response.headers["location"].endswith(f"/api/v1/users/{user.id}"), response.headers
        assert user.username == name and user.email == f"{name}@example.com", user
        assert user.role == Role.USER and user.is_active and user.age == 30, user
        users[user.id] = name
    me_id = next(iter(users))
    name = names[0]
    ok(f"register: {len(users)} users, 201 UserResponse and Location, ids {sorted(users)}")

    pair = expect(
        auth_token.sync_detailed(
            client=public, body=TokenForm(grant_type=TokenFormGrantType.PASSWORD, username=name.upper(), password=password)
        ),
        200,
        TokenResponse,
    )
    assert pair.token_type == "bearer" and pair.expires_in > 0 and pair.access_token and pair.refresh_token, pair
    wrong = expect(
        auth_token.sync_detailed(
            client=public, body=TokenForm(grant_type=TokenFormGrantType.PASSWORD, username=name, password="Wr0ngpassword")
        ),
        400,
        ErrorBody,
    )
    assert wrong.additional_properties.get("error") == "invalid_grant", wrong
    ok("token (form, password grant): 200 TokenResponse; a wrong password 400 invalid_grant")

    pair = expect(auth_login.sync_detailed(client=public, body=LoginRequest(username=name, password=password)), 200, TokenResponse)
    assert pair.token_type == "bearer", pair
    client = signed_in(pair.access_token)
    ok("login (JSON): 200 TokenResponse")

    me = expect(me_get_me.sync_detailed(client=client), 200, UserResponse)
    assert me.id == me_id and me.username == name and me.email == f"{name}@example.com", me
    ok(f"me: 200 UserResponse, id {me.id}")

    listed = expect(users_list_users.sync_detailed(client=client, skip=0, limit=100), 200, list)
    assert listed and all(isinstance(u, UserResponse) for u in listed), listed
    ids = [u.id for u in listed]
    assert ids == sorted(ids) and len(ids) <= 100, ids
    for user in listed:
        # Personal fields only in one's own user.
        assert user.email is None or user.id == me_id, user
    assert me_id in ids or len(ids) == 100, ids
    ok(f"list: 200 list[UserResponse], {len(listed)} users by id, others' emails null")

    found = expect(search_search_users.sync_detailed(client=client, query=prefix.upper(), limit=100), 200, list)
    assert all(isinstance(u, UserResponse) for u in found), found
    assert [u.username for u in found] == sorted(names), [u.username for u in found]
    ok(f"search: 200 list[UserResponse], the {len(found)} users of the run by username")

    v2 = ClientV2(base_url=base, token=pair.access_token, raise_on_unexpected_status=True)
    seen = []
    pages = 0
    cursor = UNSET_V2
    while True:
        page = expect(v2_list_users.sync_detailed(client=v2, limit=PAGE, cursor=cursor), 200, UserPage)
        pages += 1
        assert page.version == "2.0" and page.includes_inactive is False, page
        assert len(page.users) <= PAGE and all(isinstance(u, UserResponseV2) for u in page.users), page
        seen += [u.id for u in page.users]
        if not isinstance(page.next_cursor, str):
            break
        assert page.users, "a page with a next cursor is not empty"
        cursor = page.next_cursor
        assert pages < 10_000, "the walk does not end"
    assert len(seen) == len(set(seen)), f"a user seen twice: {seen}"
    assert seen == sorted(seen), seen
    missing = set(users) - set(seen)
    assert not missing, f"users of the run not seen: {missing}"
    ok(f"v2 cursor walk: {pages} pages of {PAGE}, {len(seen)} users each once, the run's {len(users)} among them")

    patched = expect(
        me_patch_me.sync_detailed(client=client, body=PatchMeRequest(age=41, email=f"{name}.new@example.com")),
        200,
        UserResponse,
    )
    assert patched.age == 41 and patched.email == f"{name}.new@example.com" and patched.username == name, patched
    cleared = expect(me_patch_me.sync_detailed(client=client, body=PatchMeRequest(age=None)), 200, UserResponse)
    assert cleared.age is None and cleared.email == f"{name}.new@example.com", cleared
    ok("patch me: 200 UserResponse; age set, email changed, then age cleared with null")

    expect(
        me_change_password.sync_detailed(
            client=client, body=ChangePasswordRequest(current_password=password, new_password=new_password)
        ),
        204,
        None,
    )
    expect(me_get_me.sync_detailed(client=client), 401, ErrorBody)
    expect(auth_refresh.sync_detailed(client=public, body=RefreshRequest(refresh_token=pair.refresh_token)), 401, ErrorBody)
    expect(auth_login.sync_detailed(client=public, body=LoginRequest(username=name, password=password)), 401, ErrorBody)
    pair = expect(
        auth_login.sync_detailed(client=public, body=LoginRequest(username=name, password=new_password)), 200, TokenResponse
    )
    client = signed_in(pair.access_token)
    expect(me_get_me.sync_detailed(client=client), 200, UserResponse)
    ok("password change: 204; the old access and refresh tokens 401, the old password 401, the new one signs in")

    renewed = expect(
        auth_refresh.sync_detailed(client=public, body=RefreshRequest(refresh_token=pair.refresh_token)), 200, TokenResponse
    )
    assert renewed.refresh_token != pair.refresh_token, renewed
    pair = renewed
    client = signed_in(pair.access_token)
    assert expect(me_get_me.sync_detailed(client=client), 200, UserResponse).id == me_id
    ok("refresh: 200 TokenResponse, a new pair that works")

    content = b"\x00\xff\xfe\x80roster\r\n\xc3\x28" + bytes(range(256)) * 8
    upload = expect(
        uploads_create_upload.sync_detailed(
            client=client,
            body=UploadsCreateUploadBody(
                file=File(payload=BytesIO(content), file_name="../notes.bin", mime_type="text/plain")
            ),
        ),
        201,
        UploadResponse,
    )
    assert upload.size == len(content) and upload.sha256 == hashlib.sha256(content).hexdigest(), upload
    assert upload.filename == "notes.bin" and upload.content_type == "application/octet-stream", upload
    meta = expect(uploads_get_upload.sync_detailed(upload.id, client=client), 200, UploadResponse)
    assert meta.id == upload.id and meta.sha256 == upload.sha256, meta
    ok(f"upload: 201 UploadResponse, {upload.size} bytes (not UTF-8), sha256 and name as sent")

    download = expect(uploads_get_upload_content.sync_detailed(upload.id, client=client), 200, File)
    assert download.payload.read() == content, "downloaded bytes differ"
    ok(f"download: 200 File, the same {len(content)} bytes")

    expect(uploads_delete_upload.sync_detailed(upload.id, client=client), 204, None)
    expect(uploads_get_upload.sync_detailed(upload.id, client=client), 404, ErrorBody)
    expect(uploads_get_upload_content.sync_detailed(upload.id, client=client), 404, ErrorBody)
    ok("delete upload: 204; then its metadata and content 404")

    expect(auth_logout.sync_detailed(client=client), 204, None)
    expect(me_get_me.sync_detailed(client=client), 401, ErrorBody)
    expect(auth_refresh.sync_detailed(client=public, body=RefreshRequest(refresh_token=pair.refresh_token)), 401, ErrorBody)
    ok("logout: 204; then the access token and the refresh token 401")

    def login():
        return expect(
            auth_login.sync_detailed(client=public, body=LoginRequest(username=name, password=new_password)),
            200,
            TokenResponse,
        )

    first, second = login(), login()
    client = signed_in(second.access_token)
    listed = expect(account_list_sessions.sync_detailed(client=client), 200, list)
    assert len(listed) == 2 and all(isinstance(s, SessionResponse) for s in listed), listed
    assert [s.current for s in listed].count(True) == 1, listed
    other = next(s for s in listed if not s.current)
    expect(account_end_session.sync_detailed(other.id, client=client), 204, None)
    expect(me_get_me.sync_detailed(client=signed_in(first.access_token)), 401, ErrorBody)
    expect(me_get_me.sync_detailed(client=client), 200, UserResponse)
    ok("sessions: 200 list[SessionResponse], two listed, the other ended with 204 (its token then 401)")

    accepted = expect(
        account_request_password_reset.sync_detailed(
            client=public, body=PasswordResetRequest(email=f"{name}.new@example.com")
        ),
        202,
        Accepted,
    )
    assert accepted.detail == "If that address is registered, a reset email is on its way", accepted
    expect(account_verify_email.sync_detailed(client=public, body=VerifyEmailRequest(token="0" * 64)), 400, ErrorBody)
    expect(account_resend_verification.sync_detailed(client=client), 202, Accepted)
    ok("password reset request 202 Accepted; a token no email carried 400; a verification resent 202")

    expect(me_delete_me.sync_detailed(client=client), 204, None)
    expect(auth_login.sync_detailed(client=public, body=LoginRequest(username=name, password=new_password)), 401, ErrorBody)
    ok("delete me: 204; then the account signs in no more (401)")
    print("python flow: passed")


if __name__ == "__main__":
    main()
