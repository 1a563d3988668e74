"""Fills DATABASE_URL with N users: user00001..userNNNNN, ids 1..N.

usage: DATABASE_URL=... SECRET_KEY=... python seed.py [N=10000] [PASSWORD=Passw0rd1]

All users share one bcrypt hash of PASSWORD, computed once; every 50th user
is inactive. Existing users are deleted first.
"""

import asyncio
import sys
from datetime import datetime, timezone

from sqlalchemy import delete, insert, text

from app import User, engine, hash_password, init_db


async def seed(n: int, password: str) -> None:
    await init_db()
    hashed = hash_password(password)
    now = datetime.now(timezone.utc)
    rows = [
        {
            "id": i,
            "username": f"user{i:05d}",
            "email": f"user{i:05d}@example.com",
            "hashed_password": hashed,
            "age": 18 + i % 60,
            "is_active": i % 50 != 0,
            "role": "user",
            "created_at": now,
        }
        for i in range(1, n + 1)
    ]
    async with engine.begin() as conn:
        await conn.execute(delete(User))
        await conn.execute(insert(User), rows)  # one executemany
        if engine.dialect.name == "postgresql":
            # Explicit ids leave the sequence behind: move it past them.
            await conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), :n)"), {"n": max(n, 1)})
    async with engine.begin() as conn:
        await conn.execute(text("ANALYZE users" if engine.dialect.name == "postgresql" else "ANALYZE"))
    await engine.dispose()
    print(f"seeded {n} users, user00001..user{n:05d}")


if __name__ == "__main__":
    asyncio.run(seed(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, sys.argv[2] if len(sys.argv) > 2 else "Passw0rd1"))
