"""A method's whole loss as the runner optimises it: the forget term plus the retain and replay
terms it defines (the runner back-propagates them one after the other, same gradient)."""


def joint_loss(method, step):
    terms = [t for t in (method.forget_loss(step), method.retain_loss(step), method.replay_loss(step))
             if t is not None]
    return sum(terms[1:], terms[0])
