"""create_post - createPost in Python (docs/functions.md).

POST /api/functions/create_post {"title": "...", "content": "..."}
"""
import re
import time

from alyx_functions import FunctionError, define_function


@define_function(
    input={
        "title": {"type": "string", "required": True, "maxLength": 200},
        "content": {"type": "string", "required": True},
        "tags": {"type": "array", "items": "string", "optional": True},
    },
    output={"id": {"type": "string"}, "slug": {"type": "string"}},
)
def handler(input, ctx):
    if not ctx.auth:
        raise FunctionError("UNAUTHORIZED", "Authentication required")
    slug = re.sub(r"[^a-z0-9]+", "-", input["title"].lower()).strip("-")
    post = ctx.db.posts.create({
        "title": input["title"],
        "content": input["content"],
        "slug": "%s-%d" % (slug, time.time_ns()),
        "author_id": ctx.auth["id"],
        "tags": input.get("tags") or [],
    })
    ctx.log.info("Post created", {"postId": post["id"],
                                  "authorId": ctx.auth["id"]})
    return {"id": post["id"], "slug": post["slug"]}
