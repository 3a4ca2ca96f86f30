"""A small blog in the shape of Flask's tutorial app (register, log in, write, edit and delete
posts), written here to prove the testing mode on a suite of the same shape. It audits what its
users do; ``audited=False`` builds the same app without the extension, for the timing baseline."""

from __future__ import annotations

import functools
import os
import sqlite3
from typing import Any

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    g,
    redirect,
    render_template_string,
    request,
    session,
    url_for,
)
from werkzeug.security import check_password_hash, generate_password_hash

from flask_audit import FlaskAudit

SCHEMA = """
CREATE TABLE user (id INTEGER PRIMARY KEY AUTOINCREMENT, username TEXT UNIQUE NOT NULL, password TEXT NOT NULL);
CREATE TABLE post (
  id INTEGER PRIMARY KEY AUTOINCREMENT, author_id INTEGER NOT NULL, created TIMESTAMP NOT NULL DEFAULT
  CURRENT_TIMESTAMP, title TEXT NOT NULL, body TEXT NOT NULL, FOREIGN KEY (author_id) REFERENCES user (id));
"""
PAGE = "{% for m in get_flashed_messages() %}<p class=flash>{{ m }}</p>{% endfor %}{{ body }}"


class NoAudit:
    """What the views call when the app is built without the extension."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(g.database_path)
        g.db.row_factory = sqlite3.Row
    return g.db


def login_required(view):
    @functools.wraps(view)
    def wrapped(**kwargs):
        if g.user is None:
            return redirect(url_for("auth.login"))
        return view(**kwargs)

    return wrapped


def create_app(test_config: dict[str, Any] | None = None, audited: bool = True) -> Flask:
    app = Flask(__name__, instance_path=(test_config or {}).get("INSTANCE", "/nonexistent"))
    app.config.from_mapping(SECRET_KEY="dev", DATABASE=None)
    app.config.update(test_config or {})
    audit: Any = (
        FlaskAudit(app, user_loader=lambda: g.user["id"] if g.get("user") else None) if audited else NoAudit()
    )
    audited = audit.audited if audited else (lambda *a, **k: lambda view: view)
    annotate = audit.annotate if not isinstance(audit, NoAudit) else (lambda **k: None)
    if not isinstance(audit, NoAudit):
        audit.register_event_type("user_registered", category="info")
        audit.register_event_type("user_logged_in", category="info")
        audit.register_event_type("post_created", category="info", resource_type="post")
        audit.register_event_type("post_updated", category="info", resource_type="post")
        audit.register_event_type("post_deleted", category="warning", resource_type="post")

    @app.before_request
    def load_user() -> None:
        g.database_path = app.config["DATABASE"]
        user_id = session.get("user_id")
        g.user = (
            None
            if user_id is None
            else get_db().execute("SELECT * FROM user WHERE id = ?", (user_id,)).fetchone()
        )

    @app.teardown_appcontext
    def close_db(_exc: BaseException | None) -> None:
        db = g.pop("db", None)
        if db is not None:
            db.close()

    auth = Blueprint("auth", __name__, url_prefix="/auth")

    @auth.route("/register", methods=("GET", "POST"))
    def register():
        if request.method == "POST":
            username, password = request.form["username"], request.form["password"]
            error = (
                "Username is required." if not username else "Password is required." if not password else None
            )
            if error is None:
                try:
                    db = get_db()
                    cursor = db.execute(
                        "INSERT INTO user (username, password) VALUES (?, ?)",
                        (username, generate_password_hash(password, method="pbkdf2:sha256:1000")),
                    )
                    db.commit()
                except db.IntegrityError:
                    error = f"User {username} is already registered."
                else:
                    audit.log("user_registered", user_id=cursor.lastrowid, resource_type="user")
                    return redirect(url_for("auth.login"))
            flash(error)
        return render_template_string(PAGE, body="register")

    @auth.route("/login", methods=("GET", "POST"))
    def login():
        if request.method == "POST":
            username, password = request.form["username"], request.form["password"]
            user = get_db().execute("SELECT * FROM user WHERE username = ?", (username,)).fetchone()
            if user is None or not check_password_hash(user["password"], password):
                audit.log("user_logged_in", outcome="failure", metadata={"username": username})
                flash("Incorrect username or password.")
                return render_template_string(PAGE, body="login")
            session.clear()
            session["user_id"] = user["id"]
            audit.log("user_logged_in", user_id=user["id"])
            return redirect(url_for("index"))
        return render_template_string(PAGE, body="login")

    @auth.route("/logout")
    def logout():
        session.clear()
        return redirect(url_for("index"))

    app.register_blueprint(auth)

    @app.route("/")
    def index():
        posts = get_db().execute("SELECT p.id, title, body FROM post p ORDER BY created DESC").fetchall()
        return render_template_string(PAGE, body=" ".join(p["title"] for p in posts))

    def get_post(post_id: int) -> sqlite3.Row:
        post = get_db().execute("SELECT * FROM post WHERE id = ?", (post_id,)).fetchone()
        if post is None:
            abort(404)
        if post["author_id"] != g.user["id"]:
            abort(403)
        return post

    @app.route("/create", methods=("GET", "POST"))
    @login_required
    def create():
        if request.method == "POST":
            if not request.form["title"]:
                flash("Title is required.")
            else:
                db = get_db()
                cursor = db.execute(
                    "INSERT INTO post (title, body, author_id) VALUES (?, ?, ?)",
                    (request.form["title"], request.form["body"], g.user["id"]),
                )
                db.commit()
                audit.log("post_created", resource_type="post", resource_id=cursor.lastrowid)
                return redirect(url_for("index"))
        return render_template_string(PAGE, body="create")

    @app.route("/<int:id>/update", methods=("GET", "POST"))
    @login_required
    @audited("post_updated", resource_type="post", resource_id="id")  # below login_required
    def update(id: int):
        get_post(id)
        if request.method == "POST":
            if not request.form["title"]:
                flash("Title is required.")
                annotate(outcome="failure", metadata={"invalid": ["title"]})
            else:
                db = get_db()
                db.execute(
                    "UPDATE post SET title = ?, body = ? WHERE id = ?",
                    (request.form["title"], request.form["body"], id),
                )
                db.commit()
                return redirect(url_for("index"))
        return render_template_string(PAGE, body="update")

    @app.route("/<int:id>/delete", methods=("POST",))
    @login_required
    def delete(id: int):
        get_post(id)
        db = get_db()
        db.execute("DELETE FROM post WHERE id = ?", (id,))
        db.commit()
        audit.log("post_deleted", resource_type="post", resource_id=id)
        return redirect(url_for("index"))

    return app


def init_db(path: str) -> None:
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
        db.executescript(
            "INSERT INTO user (username, password) VALUES"
            f" ('test', '{generate_password_hash('test', method='pbkdf2:sha256:1000')}'),"
            f" ('other', '{generate_password_hash('other', method='pbkdf2:sha256:1000')}');"
            "INSERT INTO post (title, body, author_id, created) VALUES ('test title', 'test body', 1, '2018-01-01 00:00:00');"
        )
    assert os.path.exists(path)
