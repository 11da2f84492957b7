// Module hooks of the Alyx Node executor (registered by executor.mjs):
// "@alyx/functions" resolves to the SDK shipped with the executor, and .js
// files under the functions directory load as ES modules (the seed's
// functions use `import`/`export default` in .js files without any
// package.json).
let sdkUrl = null;
let fnPrefix = null;

export async function initialize(data) {
	sdkUrl = data.sdkUrl;
	fnPrefix = data.functionsUrl;
}

export async function resolve(specifier, context, next) {
	if (specifier === "@alyx/functions")
		return { url: sdkUrl, format: "module", shortCircuit: true };
	return next(specifier, context);
}

export async function load(url, context, next) {
	if (fnPrefix && url.startsWith(fnPrefix)) {
		const path = url.split(/[?#]/)[0];
		if (path.endsWith(".js"))
			return next(url, { ...context, format: "module" });
	}
	return next(url, context);
}
