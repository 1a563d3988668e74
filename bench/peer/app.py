"""The benchmark's peer: the user API as the FastAPI tutorial builds it.

FastAPI + Pydantic 2, SQLAlchemy 2 async (aiosqlite or asyncpg), bcrypt cost
12, JWT HS256 (PyJWT). As in the tutorial: every request's session comes from
a dependency that commits on success and rolls back on error; every bearer
request loads its user from the database (get_current_user); a per-address
sliding-window rate limiter and CORS run as middleware; validation errors
and unexpected ones get the tutorial's JSON handlers.

Environment:
  DATABASE_URL           sqlite+aiosqlite:///path/to.db (default ./peer.db)
                         or postgresql+asyncpg://user@host:port/db
  SECRET_KEY             the JWT signing key (required)
  RATE_LIMIT_PER_MINUTE  requests per client address and minute (default 60,
                         the tutorial's); the benchmark sets it out of reach
  CORS_ORIGINS           allowed origins, comma-separated (default
                         http://localhost:3000)
"""

import os
import sys
import time
from collections import defaultdict, deque
from datetime import datetime, timedelta, timezone
from typing import Annotated, AsyncIterator

import bcrypt
import jwt
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, String, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from starlette.middleware.base import BaseHTTPMiddleware

DATABASE_URL = os.environ.get("DATABASE_URL", "sqlite+aiosqlite:///./peer.db")
SECRET_KEY = os.environ.get("SECRET_KEY") or sys.exit("SECRET_KEY is not set")
ALGORITHM = "HS256"
TOKEN_MINUTES = 30
BCRYPT_COST = 12
RATE_LIMIT_PER_MINUTE = int(os.environ.get("RATE_LIMIT_PER_MINUTE", "60"))
CORS_ORIGINS = os.environ.get("CORS_ORIGINS", "http://localhost:3000").split(",")

engine = create_async_engine(DATABASE_URL)
Session = async_sessionmaker(engine, expire_on_commit=False)

if engine.dialect.name == "sqlite":
    # Several uvicorn workers share one file: readers must not block.
    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(connection, _record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.close()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(50), unique=True, index=True)
    email: Mapped[str] = mapped_column(String(255))
    hashed_password: Mapped[str] = mapped_column(String(255))
    age: Mapped[int | None]
    is_active: Mapped[bool] = mapped_column(default=True)
    role: Mapped[str] = mapped_column(String(20), default="user")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


async def init_db() -> None:
    """Creates the tables if they are missing (run.sh calls it once)."""
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)


def hash_password(password: str) -> str:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(BCRYPT_COST)).decode()


def verify_password(password: str, hashed: str) -> bool:
    return bcrypt.checkpw(password.encode(), hashed.encode())


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    age: int | None
    is_active: bool
    role: str
    created_at: datetime


class LoginRequest(BaseModel):
    username: str
    password: str


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"


async def get_db() -> AsyncIterator[AsyncSession]:
    """The tutorial's session dependency: commit on success, roll back on error."""
    async with Session() as session:
        try:
            yield session
            await session.commit()
        except Exception:
            await session.rollback()
            raise


# scope="function": the commit runs before the response is sent, as the
# tutorial means it (FastAPI's default would run it after the response).
Db = Annotated[AsyncSession, Depends(get_db, scope="function")]
bearer = HTTPBearer()


async def get_current_user(
    credentials: Annotated[HTTPAuthorizationCredentials, Depends(bearer)], db: Db
) -> User:
    unauthorized = HTTPException(
        status.HTTP_401_UNAUTHORIZED, "Could not validate credentials", {"WWW-Authenticate": "Bearer"}
    )
    try:
        payload = jwt.decode(credentials.credentials, SECRET_KEY, algorithms=[ALGORITHM])
    except jwt.InvalidTokenError:
        raise unauthorized
    username = payload.get("sub")
    if not isinstance(username, str):
        raise unauthorized
    user = await db.scalar(select(User).where(User.username == username))
    if user is None or not user.is_active:
        raise unauthorized
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]

app = FastAPI(title="Roster benchmark peer")


@app.exception_handler(RequestValidationError)
async def validation_error(_request: Request, exc: RequestValidationError):
    errors = [
        {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return JSONResponse(status_code=422, content={"detail": errors})


@app.exception_handler(Exception)
async def unexpected_error(_request: Request, _exc: Exception):
    return JSONResponse(status_code=500, content={"detail": "Internal server error"})


class RateLimitMiddleware(BaseHTTPMiddleware):
    """The tutorial's limiter: the times of each address's requests over the
    last minute. It keeps them in a deque (the tutorial rebuilds a list on
    every request, which grows quadratic under load) and answers 429 itself
    (an HTTPException raised in middleware would reach the client as a 500).
    State is per worker process, as in the tutorial."""

    def __init__(self, app, requests_per_minute: int):
        super().__init__(app)
        self.requests_per_minute = requests_per_minute
        self.seen: defaultdict[str, deque] = defaultdict(deque)

    async def dispatch(self, request: Request, call_next):
        address = request.client.host if request.client else "unknown"
        now = time.time()
        times = self.seen[address]
        while times and now - times[0] >= 60:
            times.popleft()
        if len(times) >= self.requests_per_minute:
            retry = max(1, int(60 - (now - times[0])) + 1)
            return JSONResponse(status_code=429, content={"detail": "Rate limit exceeded"}, headers={"Retry-After": str(retry)})
        times.append(now)
        return await call_next(request)


# The tutorial's order: the limiter first, then CORS (the outermost).
app.add_middleware(RateLimitMiddleware, requests_per_minute=RATE_LIMIT_PER_MINUTE)
app.add_middleware(
    CORSMiddleware,
    allow_origins=CORS_ORIGINS,
    allow_credentials=True,
    allow_methods=["*"],
    allow_headers=["*"],
)


@app.post("/auth/login", response_model=Token)
async def login(body: LoginRequest, db: Db):
    user = await db.scalar(select(User).where(User.username == body.username))
    # bcrypt takes ~0.25 s at cost 12: off the event loop.
    if user is None or not await run_in_threadpool(verify_password, body.password, user.hashed_password):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Incorrect username or password")
    if not user.is_active:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Inactive user")
    expires = datetime.now(timezone.utc) + timedelta(minutes=TOKEN_MINUTES)
    token = jwt.encode({"sub": user.username, "exp": expires}, SECRET_KEY, algorithm=ALGORITHM)
    return Token(access_token=token)


# /users/me before /users/{user_id}, or "me" would be parsed as an id.
@app.get("/users/me", response_model=UserOut)
async def read_me(current_user: CurrentUser):
    return current_user


@app.get("/users/{user_id}", response_model=UserOut)
# As in the tutorial, reading users needs no token: only /users/me does.
async def read_user(user_id: Annotated[int, Path(ge=1, le=2**31 - 1)], db: Db):
    user = await db.get(User, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "User not found")
    return user


@app.get("/users", response_model=list[UserOut])
async def list_users(
    db: Db, skip: int = Query(0, ge=0), limit: int = Query(10, ge=1, le=100)
):
    result = await db.scalars(select(User).order_by(User.id).offset(skip).limit(limit))
    return result.all()
