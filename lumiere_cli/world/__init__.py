"""The procedural captioned-video world the models are trained and evaluated on (docs/WORLD.md).

- `world.vocab`: colours, shapes, motions, backgrounds, held-out triples, captions (no torch);
- `world.render`: `ClipSpec`, `sample_spec`, `render`, `render_batch`, `sample_batch`;
- `world.detect`: `detect(clip) -> Detection`, reading a clip back into its attributes.

Import from the submodules. Nothing is re-exported here: the functions `render` and `detect` share
their modules' names, and re-exporting them would make `import lumiere_cli.world.render as r`
return the function instead of the module.
"""
