// createPost - the seed plan's example function (docs/functions.md).
// POST /api/functions/createPost {"title": "...", "content": "..."}
import { defineFunction, FunctionError } from "@alyx/functions";

export default defineFunction({
  input: {
    title: { type: "string", required: true, maxLength: 200 },
    content: { type: "string", required: true },
    tags: { type: "array", items: "string", optional: true },
  },

  output: {
    id: { type: "string" },
    slug: { type: "string" },
  },

  async handler(input, ctx) {
    if (!ctx.auth)
      throw new FunctionError("UNAUTHORIZED", "Authentication required");

    const slug = input.title
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, "-")
      .replace(/^-|-$/g, "");

    const post = await ctx.db.posts.create({
      title: input.title,
      content: input.content,
      slug: `${slug}-${Date.now()}`,
      author_id: ctx.auth.id,
      tags: input.tags || [],
    });

    ctx.log.info("Post created", { postId: post.id, authorId: ctx.auth.id });

    return { id: post.id, slug: post.slug };
  },
});
