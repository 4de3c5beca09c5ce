"""Fitting the body template to a subject: silhouettes and joints through the rasterizer.

  silhouette.render_alpha(vertices, faces, camera)   # differentiable mask of a posed mesh
  subject.fit_subject(...)                           # template -> subject (shape, bones, offset)
  stage.run_fit(config, workdir)                     # the `fit` stage: cached in WORKDIR/fit/

Layer: above body, geometry, render and data; below train and eval.
"""
