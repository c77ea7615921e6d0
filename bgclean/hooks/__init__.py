"""Drop-ins for other systems' background networks (docs/hooks.md).

``impersonator``  ``BGNet``, impersonator's ``bgnet(img, masks=body_mask, only_x=True)``
``ipercore``      ``BGNet``, iPERCore's generator ``bg_net``; ``BackgroundInpaintor``, its preprocessing
``stills``        what both share: bgclean's pipeline on a batch of unrelated stills
"""
