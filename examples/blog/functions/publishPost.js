// publishPost - a transaction: the post is published and the author's
// other drafts are counted in one SQLite write transaction; anything
// thrown inside rolls it all back.
// POST /api/functions/publishPost {"id": "<post id>"}
import { defineFunction, FunctionError } from "@alyx/functions";

export default defineFunction({
  input: { id: { type: "string", required: true } },

  async handler(input, ctx) {
    if (!ctx.auth)
      throw new FunctionError("UNAUTHORIZED", "Authentication required");
    return await ctx.db.transaction(async (tx) => {
      const post = await tx.posts.get(input.id);
      if (!post || post.author_id !== ctx.auth.id)
        throw new FunctionError("NOT_FOUND", "no such post of yours");
      const updated = await tx.posts.update(post.id, {
        published: true,
        published_at: new Date().toISOString(),
        view_count: tx.raw("view_count + 1"),
      });
      const drafts = await tx.posts.query({
        filter: { author_id: ctx.auth.id, published: false },
      });
      return { id: updated.id, published: updated.published,
               drafts: drafts.length };
    });
  },
});
