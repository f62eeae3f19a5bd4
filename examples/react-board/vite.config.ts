import { defineConfig } from "vite";

// No React plugin: Vite's esbuild compiles TSX with the automatic JSX runtime (one dependency fewer;
// only Fast Refresh is missing in `npm run dev`). `base: "./"` lets the built app live under any path.
// `dedupe`: @collab/client is linked from ../../packages (file: dependency) and must share this app's
// React, not the copy among the package's dev dependencies.
export default defineConfig({
  base: "./",
  esbuild: { jsx: "automatic" },
  resolve: { dedupe: ["react", "react-dom"] },
  server: { proxy: { "/api": "http://127.0.0.1:8080", "/ws": { target: "ws://127.0.0.1:8080", ws: true } } },
});
