// Progressive enhancement for the KTP photo field: the chosen photo is made
// upright and shrunk to at most 1600 px (a JPEG of a few hundred KB) in the
// browser before it is sent, and shown as a preview, so a citizen on a
// metered mobile link does not upload 5 MB. Without JavaScript, or where the
// browser lacks what this needs, the original file is sent and the server
// does the same work.
(function () {
  'use strict';
  var input = document.getElementById('ktp_photo');
  var status = document.getElementById('ktp_photo-status');
  if (!input || !status || !window.createImageBitmap || !window.DataTransfer ||
      !HTMLCanvasElement.prototype.toBlob) {
    return;
  }
  var preview = document.createElement('img');
  preview.className = 'photo-preview';
  preview.alt = status.getAttribute('data-preview');
  preview.hidden = true;
  status.parentNode.insertBefore(preview, status.nextSibling);
  var MAX_EDGE = 1600;
  var kib = function (bytes) { return Math.max(1, Math.round(bytes / 1024)) + ' KB'; };
  input.addEventListener('change', function () {
    var file = input.files && input.files[0];
    preview.hidden = true;
    status.textContent = '';
    if (!file || !/^image\/(jpeg|png|webp|bmp)$/.test(file.type)) {
      return;
    }
    createImageBitmap(file, { imageOrientation: 'from-image' }).then(function (bitmap) {
      var scale = Math.min(1, MAX_EDGE / Math.max(bitmap.width, bitmap.height));
      var canvas = document.createElement('canvas');
      canvas.width = Math.round(bitmap.width * scale);
      canvas.height = Math.round(bitmap.height * scale);
      canvas.getContext('2d').drawImage(bitmap, 0, 0, canvas.width, canvas.height);
      preview.src = canvas.toDataURL('image/jpeg', 0.6);
      preview.hidden = false;
      canvas.toBlob(function (blob) {
        if (!blob || blob.size >= file.size) {
          return; // Already small: send it as it is.
        }
        var name = file.name.replace(/\.[^.]*$/, '') + '.jpg';
        var transfer = new DataTransfer();
        transfer.items.add(new File([blob], name, { type: 'image/jpeg' }));
        input.files = transfer.files;
        status.textContent = status.getAttribute('data-shrunk')
          .replace('{from}', kib(file.size)).replace('{to}', kib(blob.size));
      }, 'image/jpeg', 0.85);
    }).catch(function () {
      // The browser cannot read it (e.g. HEIC on some phones): the server
      // judges the original and says what to do.
    });
  });
}());
